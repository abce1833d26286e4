//! The Station CA rollover at the centre (docs/centre.md "Station CA rollover"): a real
//! PostgreSQL cluster, the centre's SoftHSM2 token, two `idcentral serve` instances on one
//! database, and stations whose identity keys are in SoftHSM2 tokens of the test. Dual control
//! and a crash after each journaled step; a station enrolled before keeps working on both
//! instances, learns the new key (`GET /v1/anchors`) and renews its identity; one enrolled
//! after is certified by the new key; the server certificate stays under the old key until an
//! operator names the new one.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centre_api::anchors::{Anchors, IdentityRenewResponse};
use centre_api::{CertifyResponse, EnrolResponse, ReserveResponse};
use common::*;
use serde_json::{json, Value};

type Reply = Result<(u16, Value, Vec<u8>), String>;

struct Enrolled {
    station: Station,
    resp: EnrolResponse,
    /// The identity certificate in use (DER).
    identity: Vec<u8>,
}

struct World {
    rt: tokio::runtime::Runtime,
    servers: Vec<Server>,
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl World {
    /// A TLS client for `st` presenting `identity`, trusting `anchors`.
    fn tls(st: &Enrolled, identity: &[u8], anchors: &[Vec<u8>]) -> Arc<rustls::ClientConfig> {
        let id = common::identity(&st.station.store, "identity", identity.to_vec());
        client_config_many(anchors, Some(id))
    }

    fn call(
        &self,
        server: usize,
        tls: &Arc<rustls::ClientConfig>,
        m: &str,
        p: &str,
        b: Option<&Value>,
    ) -> Reply {
        let addr = self.servers[server].addr;
        self.rt
            .block_on(https(addr, "localhost", Arc::clone(tls), m, p, b))
    }

    fn ok(
        &self,
        server: usize,
        tls: &Arc<rustls::ClientConfig>,
        m: &str,
        p: &str,
        b: Option<&Value>,
    ) -> Value {
        let (status, v, _) = self
            .call(server, tls, m, p, b)
            .unwrap_or_else(|e| panic!("{m} {p}: {e}"));
        assert_eq!(status, 200, "{m} {p}: {v}");
        v
    }

    /// `whoami` answers 200 on `server` within 10 s (instances read new Station CA keys every
    /// 2 s): polled, never slept blindly.
    fn eventually_ok(&self, server: usize, tls: &Arc<rustls::ClientConfig>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.call(server, tls, "GET", "/v1/whoami", None) {
                Ok((200, _, _)) => return,
                other => assert!(
                    Instant::now() < deadline,
                    "whoami on instance {server}: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn enrol(&self, token: &str, name: &str, code: &str, anchor: &[u8]) -> Enrolled {
        let station = Station::new(token);
        let req = station.enrol_request(name, code);
        let anon = client_config(anchor, None);
        let resp: EnrolResponse =
            serde_json::from_value(self.ok(0, &anon, "POST", "/v1/enrol", Some(&req))).unwrap();
        let identity = der_of_pem(&resp.identity_cert);
        Enrolled {
            station,
            resp,
            identity,
        }
    }

    fn admin(&self, args: &[&str], who: &str, env: &[(&str, &str)]) -> std::process::Output {
        as_operator(&self.config, args, who, env)
    }

    fn pem_file(&self, name: &str, der: &[u8]) {
        std::fs::write(self.dir.join(name), ca::cert_pem(der).unwrap()).unwrap();
    }

    fn verifies(&self, args: &[&str]) {
        let mut all = vec!["-x509_strict"];
        all.extend(args);
        let (ok, out) = openssl_verify(&self.dir, &all);
        assert!(ok, "openssl verify {args:?}: {out}");
    }
}

/// A TLS 1.3 client trusting every certificate of `anchors`.
fn client_config_many(
    anchors: &[Vec<u8>],
    identity: Option<rustls::sign::CertifiedKey>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for a in anchors {
        roots
            .add(rustls::pki_types::CertificateDer::from(a.clone()))
            .unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => b.with_no_client_auth(),
        Some(ck) => b.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck))),
    })
}

fn reserve_body(pinfl: &str) -> Value {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    let job = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    json!({
        "job": job, "operator": "clerk1",
        "holder": { "pinfl": pinfl, "surname": "Karimova", "given_names": "Dilnoza", "sex": "F",
                    "date_of_birth": "1990-04-12", "place_of_birth": "Tashkent", "citizenship": "UZB" },
        "address": { "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
                     "street": "Amir Temur 1", "house": "12", "registered_on": "2015-06-01" },
        "update_holder": false, "card_serial": "0A1B2C3D",
    })
}

/// Reserve a job for `pinfl` on `server` (the issuance protocol's first step).
fn reserves(
    w: &World,
    server: usize,
    tls: &Arc<rustls::ClientConfig>,
    pinfl: &str,
) -> ReserveResponse {
    let v = w.ok(
        server,
        tls,
        "POST",
        "/v1/jobs/reserve",
        Some(&reserve_body(pinfl)),
    );
    let r: ReserveResponse = serde_json::from_value(v).unwrap();
    assert!(r.document.starts_with("AA"), "{r:?}");
    r
}

/// Reserve and certify a job for `pinfl` (card keys: software P-256 keys proving possession as a
/// PIV card would); the answer.
fn certifies(w: &World, tls: &Arc<rustls::ClientConfig>, pinfl: &str) -> CertifyResponse {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;
    let r = reserves(w, 0, tls, pinfl);
    let entry = |slot: u8, profile: &str| {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        let key = p256::ecdsa::SigningKey::from_slice(&b).unwrap();
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let digest =
            centre_api::proof_digest(&r.job, &hex::decode(&r.challenge).unwrap(), slot, &spki);
        let sig: p256::ecdsa::DerSignature = key.sign_prehash(&digest).unwrap();
        json!({ "slot": format!("{slot:02X}"), "profile": profile,
                "public_key": hex::encode(&spki), "proof": hex::encode(sig.as_bytes()) })
    };
    let body = json!({ "operator": "clerk1",
                       "keys": [entry(0x9a, "holder-auth"), entry(0x9c, "holder-sign")] });
    let path = centre_api::paths::certify(&r.job);
    serde_json::from_value(w.ok(0, tls, "POST", &path, Some(&body))).unwrap()
}

fn set_server_key(config: &Path, label: &str) {
    let t = std::fs::read_to_string(config).unwrap();
    let t = t.replace(
        "public_name = \"localhost\"\n",
        &format!("public_name = \"localhost\"\nstation_ca_key = \"{label}\"\n"),
    );
    std::fs::write(config, t).unwrap();
}

fn key_rows(w: &World, db: &tokio_postgres::Client) -> Vec<(String, String)> {
    w.rt.block_on(db.query(
        "SELECT label, state FROM ca_keys WHERE ca = 'station-ca' ORDER BY label",
        &[],
    ))
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Dual control, then the approval killed after each journaled step and `ca recover` run
/// until the switch: one new key, no label skipped.
fn rotate_with_crashes(w: &World, db: &tokio_postgres::Client) {
    let filed = ok(w.admin(&["ca", "rotate", "--ca", "station"], "admin", &[]));
    assert!(
        filed.contains("Filed CA request 1: rotate station-ca (from station-ca-1)"),
        "{filed}"
    );
    refused(
        &w.admin(&["ca", "approve", "1"], "admin", &[]),
        6,
        "cannot also approve it (dual control)",
    );
    refused(
        &w.admin(&["ca", "rotate", "--ca", "station"], "admin2", &[]),
        5,
        "still pending",
    );
    let fp = |p| [("IDCENTRAL_FAILPOINT", p)];
    let killed = w.admin(&["ca", "approve", "1"], "admin2", &fp("rotation.approved"));
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    for point in ["rotation.key-generated", "rotation.cert-signed"] {
        assert_eq!(key_rows(w, db), [("station-ca-1".into(), "active".into())]);
        let killed = w.admin(&["ca", "recover"], "admin", &fp(point));
        assert_eq!(killed.status.code(), None, "{point}: {}", text(&killed));
    }
    let killed = w.admin(&["ca", "recover"], "admin", &fp("rotation.switched"));
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    let again = ok(w.admin(&["ca", "recover"], "admin", &[]));
    assert!(again.contains("Nothing to recover"), "{again}");
    assert_eq!(
        key_rows(w, db),
        [
            ("station-ca-1".into(), "retired".into()),
            ("station-ca-2".into(), "active".into())
        ]
    );
}

/// A centre initialised with two ca-admins and two enrolment codes of office TAS01
/// (tas01-st1, tas01-st2), `servers` instances of `serve` on its database: the temporary dir
/// and the cluster (kept alive by the caller), a database connection, the world, both codes
/// and the Station CA certificate (station-ca-1).
#[allow(clippy::type_complexity)]
fn set_up(
    servers: usize,
) -> (
    tempfile::TempDir,
    Cluster,
    tokio_postgres::Client,
    World,
    String,
    String,
    Vec<u8>,
) {
    let (tmp, cluster, config) = centre("\n[server]\npublic_name = \"localhost\"\n");
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &pw,
    ));
    let code1 = add_station_at(&config, "TAS01", "tas01-st1");
    let code2 = add_station_at(&config, "TAS01", "tas01-st2");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let ca1: Vec<u8> = rt
        .block_on(db.query_one(
            "SELECT cert_der FROM ca_keys WHERE label = 'station-ca-1'",
            &[],
        ))
        .unwrap()
        .get(0);
    let w = World {
        rt,
        servers: (0..servers).map(|_| Server::start(&config)).collect(),
        config: config.clone(),
        dir: tmp.path().to_owned(),
    };
    (tmp, cluster, db, w, code1, code2, ca1)
}

#[test]
fn a_station_ca_rollover_keeps_every_station_working_and_moves_identities_to_the_new_key() {
    let (_tmp, _cluster, db, w, code1, code2, ca1) = set_up(2);
    let mut st1 = w.enrol("ro-st1", "tas01-st1", &code1, &ca1);
    w.pem_file("root.pem", &der_of_pem(&st1.resp.trust_anchors.root));
    w.pem_file("ca1.pem", &ca1);
    let old_tls = World::tls(&st1, &st1.identity, std::slice::from_ref(&ca1));
    for i in 0..2 {
        w.ok(i, &old_tls, "GET", "/v1/whoami", None);
    }

    let list = ok(w.admin(&["station", "list"], "admin", &[]));
    assert!(
        list.lines()
            .any(|l| l.contains("tas01-st1") && l.ends_with("(identity under station-ca-1)")),
        "{list}"
    );
    rotate_with_crashes(&w, &db);
    let ca2: Vec<u8> =
        w.rt.block_on(db.query_one(
            "SELECT cert_der FROM ca_keys WHERE label = 'station-ca-2'",
            &[],
        ))
        .unwrap()
        .get(0);
    w.pem_file("ca2.pem", &ca2);
    w.verifies(&["-CAfile", "root.pem", "ca2.pem"]);

    // The station enrolled before, with only the old anchor, keeps issuing on both instances.
    for (i, pinfl) in [(0, "31234567890123"), (1, "31234567890124")] {
        w.ok(i, &old_tls, "GET", "/v1/status", None);
        reserves(&w, i, &old_tls, pinfl);
    }
    // It learns the new key; the server certificate is still under the old one.
    let a: Anchors = serde_json::from_value(w.ok(1, &old_tls, "GET", "/v1/anchors", None)).unwrap();
    let labels: Vec<(&str, &str)> = a
        .station_cas
        .iter()
        .map(|k| (k.label.as_str(), k.state.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("station-ca-1", "retired"), ("station-ca-2", "active")]
    );
    assert_eq!(a.server_issuer, "station-ca-1");
    assert_eq!(der_of_pem(&a.station_cas[1].cert), ca2);

    // A station enrolled after: its identity under station-ca-2, the anchor it gets the server
    // certificate's issuer; both instances accept it.
    let st2 = w.enrol("ro-st2", "tas01-st2", &code2, &ca1);
    assert_eq!(der_of_pem(&st2.resp.trust_anchors.station_ca), ca1);
    w.pem_file("st2.pem", &st2.identity);
    w.verifies(&[
        "-CAfile",
        "root.pem",
        "-untrusted",
        "ca2.pem",
        "-purpose",
        "sslclient",
        "st2.pem",
    ]);
    let (bad, _) = openssl_verify(
        &w.dir,
        &["-CAfile", "root.pem", "-untrusted", "ca1.pem", "st2.pem"],
    );
    assert!(!bad, "st2's identity must not verify under station-ca-1");
    let st2_tls = World::tls(&st2, &st2.identity, std::slice::from_ref(&ca1));
    for i in 0..2 {
        w.eventually_ok(i, &st2_tls);
    }
    reserves(&w, 1, &st2_tls, "31234567890125");

    let old = renew_identities(&w, &db, &mut st1, &ca1, &ca2);
    let config = w.config.clone();
    let w = server_certificate_moves(w, &config, &st1, &ca1, &ca2, &db);
    revoked_key_is_refused(&w, &db, &st1, &old, &ca1, &ca2);
    egov_client_recertified(w, &config, &db, &ca1, &ca2);
}

/// The centre's e-government client certificate was made under station-ca-1 at `init`; with
/// that key revoked, the publisher's start certifies the same HSM key again under station-ca-2
/// (`egov.key-recertified`, saying why) and presents that chain.
fn egov_client_recertified(
    mut w: World,
    config: &Path,
    db: &tokio_postgres::Client,
    ca1: &[u8],
    ca2: &[u8],
) {
    let tls_cert = |w: &World| -> Vec<u8> {
        w.rt.block_on(db.query_one(
            "SELECT cert_der FROM egov_keys WHERE purpose = 'tls-client' AND state = 'active'",
            &[],
        ))
        .unwrap()
        .get(0)
    };
    let before = tls_cert(&w);
    assert!(ca::issued_by(&before, ca1).unwrap());
    let with_egov = w.dir.join("centre-egov.toml");
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[egov]\nurl = \"https://localhost:9/v1/messages\"\nca_file = \"{}\"\n",
        w.dir.join("root.pem").display()
    ));
    std::fs::write(&with_egov, text).unwrap();
    w.servers = vec![Server::start(&with_egov)];
    let after = tls_cert(&w);
    assert!(
        ca::issued_by(&after, ca2).unwrap(),
        "re-certified under station-ca-2"
    );
    assert_eq!(
        ca::certificate_spki(&after).unwrap(),
        ca::certificate_spki(&before).unwrap(),
        "the same HSM key"
    );
    let details: String =
        w.rt.block_on(db.query_one(
            "SELECT details FROM audit_log WHERE action = 'egov.key-recertified'",
            &[],
        ))
        .unwrap()
        .get(0);
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["why"], "its CA key was revoked", "{details}");
    assert_eq!(details["issuer_key"], "station-ca-2", "{details}");
    w.pem_file("egov-client.pem", &after);
    w.verifies(&[
        "-CAfile",
        "root.pem",
        "-untrusted",
        "ca2.pem",
        "-purpose",
        "sslclient",
        "egov-client.pem",
    ]);
}

/// The renewal: a new identity under station-ca-2 for the same key; the old one stays
/// accepted; a repeat over the old one (an answer lost) replaces the unanswered one.
fn renew_identities(
    w: &World,
    db: &tokio_postgres::Client,
    st1: &mut Enrolled,
    ca1: &[u8],
    ca2: &[u8],
) -> Vec<u8> {
    let old = st1.identity.clone();
    let old_tls = World::tls(st1, &old, &[ca1.to_vec()]);
    let body = json!({ "operator": "admin", "identity_csr": st1.station.csr("identity") });
    let bad = json!({ "operator": "admin", "identity_csr": "00ff" });
    let r = w.call(0, &old_tls, "POST", "/v1/identity/renew", Some(&bad));
    assert_refused(&r, 400, "invalid-request");
    assert!(r.unwrap().1["error"]
        .as_str()
        .unwrap()
        .contains("identity_csr"));
    let renew = |tls| -> IdentityRenewResponse {
        serde_json::from_value(w.ok(0, tls, "POST", "/v1/identity/renew", Some(&body))).unwrap()
    };
    let lost = der_of_pem(&renew(&old_tls).identity_cert);
    let r = renew(&old_tls);
    assert_eq!(r.issuer, "station-ca-2");
    let new = der_of_pem(&r.identity_cert);
    w.pem_file("st1-new.pem", &new);
    w.verifies(&[
        "-CAfile",
        "root.pem",
        "-untrusted",
        "ca2.pem",
        "-purpose",
        "sslclient",
        "st1-new.pem",
    ]);
    let lost_tls = World::tls(st1, &lost, &[ca1.to_vec()]);
    assert_refused(
        &w.call(0, &lost_tls, "GET", "/v1/whoami", None),
        403,
        "certificate-not-enrolled",
    );
    let new_tls = World::tls(st1, &new, &[ca1.to_vec(), ca2.to_vec()]);
    for i in 0..2 {
        w.ok(i, &old_tls, "GET", "/v1/whoami", None);
        w.ok(i, &new_tls, "GET", "/v1/whoami", None);
    }
    reserves(w, 0, &new_tls, "31234567890126");
    st1.identity = new;
    let actions = w.rt.block_on(audit_actions(db));
    let renewed = actions
        .iter()
        .filter(|a| *a == "station.identity-renewed")
        .count();
    assert_eq!(renewed, 2, "{actions:?}");
    assert!(
        actions.iter().any(|a| a == "request.refused"),
        "{actions:?}"
    );
    old
}

/// `[server] station_ca_key = "station-ca-2"` and a restart: the server certificate moves; a
/// client holding only station-ca-1 no longer connects, one holding both does.
fn server_certificate_moves(
    mut w: World,
    config: &Path,
    st1: &Enrolled,
    ca1: &[u8],
    ca2: &[u8],
    db: &tokio_postgres::Client,
) -> World {
    let both = World::tls(st1, &st1.identity, &[ca1.to_vec(), ca2.to_vec()]);
    let (_, _, cert) = w.call(0, &both, "GET", "/v1/whoami", None).unwrap();
    assert!(ca::issued_by(&cert, ca1).unwrap());
    set_server_key(config, "station-ca-2");
    w.servers = vec![Server::start(config)];
    let (status, _, cert) = w.call(0, &both, "GET", "/v1/whoami", None).unwrap();
    assert_eq!(status, 200);
    assert!(ca::issued_by(&cert, ca2).unwrap());
    w.pem_file("server.pem", &cert);
    w.verifies(&[
        "-CAfile",
        "root.pem",
        "-untrusted",
        "ca2.pem",
        "-purpose",
        "sslserver",
        "server.pem",
    ]);
    let only_old = World::tls(st1, &st1.identity, &[ca1.to_vec()]);
    let e = w.call(0, &only_old, "GET", "/v1/whoami", None).unwrap_err();
    assert!(e.contains("handshake"), "{e}");
    let list = ok(w.admin(&["station", "list"], "admin", &[]));
    for st in ["tas01-st1", "tas01-st2"] {
        let line = list.lines().find(|l| l.contains(st)).unwrap_or_default();
        assert!(line.ends_with("(identity under station-ca-2)"), "{list}");
    }
    let verify = ok(w.admin(&["audit", "verify-log"], "admin", &[]));
    assert!(verify.contains("the chain holds"), "{verify}");
    let actions = w.rt.block_on(audit_actions(db));
    assert!(actions.iter().any(|a| a == "ca.key.rotated"), "{actions:?}");
    w
}

/// station-ca-1 marked revoked in the database (what an emergency revocation would record):
/// the serving instance stops accepting identities under it within its refresh, without a
/// restart, and `GET /v1/anchors` no longer lists it.
fn revoked_key_is_refused(
    w: &World,
    db: &tokio_postgres::Client,
    st1: &Enrolled,
    old: &[u8],
    ca1: &[u8],
    ca2: &[u8],
) {
    let old_tls = World::tls(st1, old, &[ca1.to_vec(), ca2.to_vec()]);
    w.ok(0, &old_tls, "GET", "/v1/whoami", None);
    let revoke = "UPDATE ca_keys SET state = 'revoked' WHERE label = 'station-ca-1'";
    w.rt.block_on(db.execute(revoke, &[])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok((200, _, _)) = w.call(0, &old_tls, "GET", "/v1/whoami", None) {
        assert!(
            Instant::now() < deadline,
            "an identity under a revoked key still accepted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = w.call(0, &old_tls, "GET", "/v1/whoami", None);
    assert!(r.is_err(), "the TLS layer should refuse it: {r:?}");
    let new_tls = World::tls(st1, &st1.identity, &[ca2.to_vec()]);
    let a: Anchors = serde_json::from_value(w.ok(0, &new_tls, "GET", "/v1/anchors", None)).unwrap();
    let labels: Vec<&str> = a.station_cas.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, ["station-ca-2"]);
}

/// The `ca certs` files of `key` copied into the test's directory.
fn certs_of(w: &World, key: &str) {
    let out = w.dir.join(format!("certs-{key}"));
    ok(w.admin(
        &["ca", "certs", "--key", key, "--out", out.to_str().unwrap()],
        "admin",
        &[],
    ));
    for f in std::fs::read_dir(&out).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), w.dir.join(f.file_name())).unwrap();
    }
}

/// Approve request `id` by admin2, executed.
fn approved(w: &World, id: &str, what: &str) {
    let done = ok(w.admin(&["ca", "approve", id], "admin2", &[]));
    assert!(done.contains(what), "{done}");
}

/// The National Root rolled over under dual control, killed after its certificates were signed
/// and finished by `ca recover`; both link certificates verify where they apply.
fn root_rolls_over(w: &World) {
    let filed = ok(w.admin(&["ca", "rotate", "--ca", "root"], "admin", &[]));
    assert!(filed.contains("rotate root (from root-ca-1)"), "{filed}");
    refused(
        &w.admin(&["ca", "approve", "1"], "admin", &[]),
        6,
        "dual control",
    );
    let fp = [("IDCENTRAL_FAILPOINT", "rotation.cert-signed")];
    let killed = w.admin(&["ca", "approve", "1"], "admin2", &fp);
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    let list = ok(w.admin(&["ca", "list"], "admin", &[]));
    assert!(
        list.contains("root-ca-1") && !list.contains("root-ca-2"),
        "{list}"
    );
    let rec = ok(w.admin(&["ca", "recover"], "admin", &[]));
    assert!(
        rec.contains("root root-ca-2 active, root-ca-1 retired")
            && rec.contains("new-with-old, old-with-new"),
        "{rec}"
    );
    certs_of(w, "root-ca-1");
    certs_of(w, "root-ca-2");
    w.verifies(&[
        "-CAfile",
        "root-ca-1.pem",
        "link-root-ca-2-by-root-ca-1.pem",
    ]);
    w.verifies(&[
        "-CAfile",
        "root-ca-2.pem",
        "link-root-ca-1-by-root-ca-2.pem",
    ]);
    let (wrong, _) = openssl_verify(&w.dir, &["-CAfile", "root-ca-2.pem", "root-ca-1.pem"]);
    assert!(
        !wrong,
        "root-ca-1 must not verify under root-ca-2 without the link"
    );
}

/// Holder certificates of `c` verify with `ca_file` as the only anchor, `untrusted` the path.
fn holder_certs_verify(w: &World, c: &CertifyResponse, name: &str, ca_file: &str, untrusted: &str) {
    for cert in &c.certificates {
        let f = format!("{name}-{}.pem", cert.slot);
        w.pem_file(&f, &hex::decode(&cert.der).unwrap());
        w.verifies(&["-CAfile", ca_file, "-untrusted", untrusted, &f]);
    }
}

#[test]
fn a_root_rollover_keeps_old_chains_and_later_cas_come_under_the_new_root() {
    let (_tmp, _cluster, _db, w, code1, code2, ca1) = set_up(1);
    let st1 = w.enrol("rr-st1", "tas01-st1", &code1, &ca1);
    let tls1 = World::tls(&st1, &st1.identity, std::slice::from_ref(&ca1));
    root_rolls_over(&w);

    // The station enrolled before carries on; its certificates still come from esign-ca-1,
    // under the old root, which a relying party holding only root-ca-2 reaches by OldWithNew.
    let c1 = certifies(&w, &tls1, "31234567890123");
    w.pem_file("esign1.pem", &hex::decode(&c1.issuer).unwrap());
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(w.dir.join("esign1.pem")).unwrap(),
        std::fs::read_to_string(w.dir.join("link-root-ca-1-by-root-ca-2.pem")).unwrap()
    );
    std::fs::write(w.dir.join("old-path.pem"), chain).unwrap();
    holder_certs_verify(&w, &c1, "c1", "root-ca-2.pem", "old-path.pem");
    let a: Anchors = serde_json::from_value(w.ok(0, &tls1, "GET", "/v1/anchors", None)).unwrap();
    let roots: Vec<(&str, &str)> = a
        .roots
        .iter()
        .map(|r| (r.label.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(roots, [("root-ca-1", "retired"), ("root-ca-2", "active")]);
    assert_eq!(a.root_links.len(), 2, "{:?}", a.root_links);

    // The e-Signature CA and the Station CA rotated afterwards come under root-ca-2; a relying
    // party holding only root-ca-1 reaches them by NewWithOld.
    ok(w.admin(&["ca", "rotate", "--ca", "esign"], "admin", &[]));
    approved(&w, "2", "esign esign-ca-2 active");
    let c2 = certifies(&w, &tls1, "31234567890124");
    w.pem_file("esign2.pem", &hex::decode(&c2.issuer).unwrap());
    holder_certs_verify(&w, &c2, "c2", "root-ca-2.pem", "esign2.pem");
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(w.dir.join("esign2.pem")).unwrap(),
        std::fs::read_to_string(w.dir.join("link-root-ca-2-by-root-ca-1.pem")).unwrap()
    );
    std::fs::write(w.dir.join("new-path.pem"), chain).unwrap();
    holder_certs_verify(&w, &c2, "c2", "root-ca-1.pem", "new-path.pem");
    ok(w.admin(&["ca", "rotate", "--ca", "station"], "admin", &[]));
    approved(&w, "3", "station-ca station-ca-2 active");
    certs_of(&w, "station-ca-2");
    w.verifies(&["-CAfile", "root-ca-2.pem", "station-ca-2.pem"]);
    w.ok(0, &tls1, "GET", "/v1/status", None);

    // A station enrolled now gets root-ca-2 as its root and its audit certificate under it.
    let st2 = w.enrol("rr-st2", "tas01-st2", &code2, &ca1);
    assert_eq!(
        der_of_pem(&st2.resp.trust_anchors.root),
        der_of_pem(&std::fs::read_to_string(w.dir.join("root-ca-2.pem")).unwrap())
    );
    std::fs::write(w.dir.join("st2-audit.pem"), &st2.resp.audit_cert).unwrap();
    w.verifies(&["-CAfile", "root-ca-2.pem", "st2-audit.pem"]);
    // The centre's own audit signer stays under root-ca-1; the log verifies.
    let verify = ok(w.admin(&["audit", "verify-log"], "admin", &[]));
    assert!(verify.contains("the chain holds"), "{verify}");
}

/// `POST /v1/document-signer/renew` (docs/centre.md "Document Signer renewal"): a new key is
/// certified by the active CSCA and recorded beside the first; asking again for the same key
/// returns the same certificate and records nothing; the station's identity or audit key, a
/// request without proof of possession, a client without a station certificate and a
/// disabled station are refused.
#[test]
fn a_document_signer_renewal_is_idempotent_by_key_and_refuses_other_keys() {
    use centre_api::anchors::DocumentSignerRenewResponse;
    let (_tmp, _cluster, db, w, code1, _code2, ca1) = set_up(1);
    let st = w.enrol("ds-st1", "tas01-st1", &code1, &ca1);
    let tls = World::tls(&st, &st.identity, std::slice::from_ref(&ca1));
    let path = "/v1/document-signer/renew";
    st.station.store.generate_p256("ds-2").unwrap();
    let body =
        |key: &str| json!({ "operator": "admin", "document_signer_csr": st.station.csr(key) });
    let renew = || -> DocumentSignerRenewResponse {
        serde_json::from_value(w.ok(0, &tls, "POST", path, Some(&body("ds-2")))).unwrap()
    };
    let first = renew();
    assert!(first.issued_now);
    assert_eq!(first.csca, "csca-1");
    assert_eq!(first.csca_cert, st.resp.trust_anchors.csca);
    assert!(first.csca_links.is_empty());
    let der = der_of_pem(&first.document_signer_cert);
    assert!(ca::issued_by(&der, &der_of_pem(&first.csca_cert)).unwrap());
    assert_eq!(
        ca::certificate_spki(&der).unwrap(),
        st.station.store.public_key_spki("ds-2").unwrap()
    );
    let info = ca::CertInfo::parse(&der).unwrap();
    assert!(info.key_usage_until.is_some(), "{info:?}");
    let again = renew();
    assert!(!again.issued_now);
    assert_eq!(again.document_signer_cert, first.document_signer_cert);
    let rows: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM station_certs WHERE station = 'tas01-st1' AND purpose = 'document-signer'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);

    for (key, part) in [("identity", "identity key"), ("audit", "audit key")] {
        let r = w.call(0, &tls, "POST", path, Some(&body(key)));
        assert_refused(&r, 400, "invalid-request");
        let msg = r.unwrap().1["error"].as_str().unwrap().to_owned();
        assert!(
            msg.contains("document_signer_csr") && msg.contains(part),
            "{msg}"
        );
    }
    let bad = json!({ "operator": "admin", "document_signer_csr": "3000" });
    assert_refused(
        &w.call(0, &tls, "POST", path, Some(&bad)),
        400,
        "invalid-request",
    );
    let anon = client_config(&ca1, None);
    assert_refused(
        &w.call(0, &anon, "POST", path, Some(&body("ds-2"))),
        401,
        "client-certificate-required",
    );
    disable_station(&w.config, "tas01-st1");
    assert_refused(
        &w.call(0, &tls, "POST", path, Some(&body("ds-2"))),
        403,
        "station-disabled",
    );
    let actions = w.rt.block_on(audit_actions(&db));
    let renewed = actions
        .iter()
        .filter(|a| *a == "station.document-signer-renewed")
        .count();
    assert_eq!(renewed, 1, "{actions:?}");
}
