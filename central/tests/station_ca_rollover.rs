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
use centre_api::{EnrolResponse, ReserveResponse};
use common::*;
use serde_json::{json, Value};

const ADMIN2_PASSWORD: &str = "centre-second-admin-pw-5e91";

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
        let pw = if who == "admin" {
            ADMIN_PASSWORD
        } else {
            ADMIN2_PASSWORD
        };
        let mut all = args.to_vec();
        all.extend(["--operator", who]);
        let out = idcentral_env(&self.config, &all, &format!("{pw}\n"), env);
        assert!(!text(&out).contains(ADMIN2_PASSWORD) && !text(&out).contains(ADMIN_PASSWORD));
        out
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
fn reserves(w: &World, server: usize, tls: &Arc<rustls::ClientConfig>, pinfl: &str) {
    let v = w.ok(
        server,
        tls,
        "POST",
        "/v1/jobs/reserve",
        Some(&reserve_body(pinfl)),
    );
    let r: ReserveResponse = serde_json::from_value(v).unwrap();
    assert!(r.document.starts_with("AA"), "{r:?}");
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
    refused(
        &w.admin(&["ca", "rotate", "--ca", "root"], "admin2", &[]),
        2,
        "the National Root does not roll over at the centre yet",
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

#[test]
fn a_station_ca_rollover_keeps_every_station_working_and_moves_identities_to_the_new_key() {
    let (tmp, cluster, config) = centre("\n[server]\npublic_name = \"localhost\"\n");
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &pw,
    ));
    let code1 = add_station_at(&config, "TAS01", "tas01-st1");
    let code2 = add_station_at(&config, "TAS01", "tas01-st2");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
        servers: vec![Server::start(&config), Server::start(&config)],
        config: config.clone(),
        dir: tmp.path().to_owned(),
    };
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
    let w = server_certificate_moves(w, &config, &st1, &ca1, &ca2, &db);
    revoked_key_is_refused(&w, &db, &st1, &old, &ca1, &ca2);
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
